"""What the routes do: jobs (admit, record, start, describe), edits and their uploads,
conversations, signed image links, and the orphan reconciler."""
