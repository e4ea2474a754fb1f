"""Code generation targets: aclnn-cpp, and the aclnn headers it compiles against."""
