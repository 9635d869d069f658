"""SQL of the plugin's own tables (the job queue)."""
