"""The canonical HOI record: Arrow/Features schema, box conventions and taxonomies."""
