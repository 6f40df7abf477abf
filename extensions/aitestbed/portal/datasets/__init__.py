"""The dataset catalog: access decisions from the database (``access``), the REST API
(``api``), safe reading of a dataset's files (``files``), and the demo data (``demo``)."""
