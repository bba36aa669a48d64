"""Reserved for a later issue; see ../shared/architecture.md."""
