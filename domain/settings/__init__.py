"""Platform-wide settings an admin edits: one aggregate, read by everything else."""
