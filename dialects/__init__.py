"""What the IR means: the qmm and mc2 dialects, the mc2 rule table, and the numerics."""
