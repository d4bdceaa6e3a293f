project = "station summaries"
extensions = ["sphinx.ext.autodoc"]
