"""Statistics and reporting of transmission."""
