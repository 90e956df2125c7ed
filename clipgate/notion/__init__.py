"""Notion as the reviewers' surface: Videos rows with playable clips, task status in sync."""
