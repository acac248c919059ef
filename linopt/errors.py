"""Errors a user can fix: the experiments print them as one line, no traceback."""


class LinoptError(Exception):
    """A problem with the user's input (data, flags, files), with what to do."""


class DataError(LinoptError):
    """Data that is missing, corrupt or of the wrong shape; names the file."""
