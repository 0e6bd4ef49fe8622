"""media-timing: when news events were timed, with sources and honest statistics."""
