"""The PyTorch frontend: a `torch.export` program (a `.pt2` file or an `ExportedProgram`)
imported into qmm, func and tensor ops.  The only part of qmmar that imports torch.

    from qmmar.frontends.torch import import_program, load_program
    module = import_program(load_program("block.pt2"), world_size=8, group_map={"0": "tp"})
"""

from qmmar.frontends.torch.importer import (
    Argument,
    ImportedProgram,
    ImportOptions,
    Note,
    import_exported_program,
    import_graph,
    import_program,
)
from qmmar.frontends.torch.program import load_program, program_state, weight_arrays

__all__ = [
    "Argument",
    "ImportOptions",
    "ImportedProgram",
    "Note",
    "import_exported_program",
    "import_graph",
    "import_program",
    "load_program",
    "program_state",
    "weight_arrays",
]
