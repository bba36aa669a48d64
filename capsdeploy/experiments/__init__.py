"""The paper's claims, checked on a user's own runs: reconstructions, capsule dimensions,
affine robustness against the baseline CNN. The top of the data flow: it may import the
model, export and runtime stages, and nothing imports it but the CLI."""
