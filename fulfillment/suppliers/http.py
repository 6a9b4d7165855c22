"""Generic HTTP supplier for real vendors."""
