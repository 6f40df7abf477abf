"""Portal service: REST API and pages with their own database."""
