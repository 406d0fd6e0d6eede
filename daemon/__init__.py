"""hotmatte: a background-removal daemon for photo studios' hot folders."""
