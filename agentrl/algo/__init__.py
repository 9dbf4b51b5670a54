"""Layer 5, the math: advantage estimators (one pure function each, in a registry) and the losses of the
update step. Imports only core's records."""
