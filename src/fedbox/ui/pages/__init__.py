"""One router per page of the UI."""
