"""The review room: the reviewer's own web page for watching clips and answering a round."""
