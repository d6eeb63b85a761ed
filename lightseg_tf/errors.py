"""The one exception type a user is meant to read."""


class LightsegError(Exception):
    """An error caused by the user's input (bad path, bad config, corrupt file, ...).

    The CLI prints its message as one line and exits non-zero, without a traceback unless
    ``--debug`` is given. The message must name the file or key at fault and say what to do.
    """
