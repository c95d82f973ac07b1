"""Wrappers of a text stream whose write and flush errors are handled in one place: the `fastnn` command's stdout
and stderr (fastnn.cli) and the Solver's progress bar."""

# A moment's error (a non-blocking pipe whose reader is slow): the chunk is dropped, the stream kept
TRANSIENT = (BlockingIOError, InterruptedError)


class GuardedStream:
    """`stream`, with an error of `caught` from write or flush handed to failed(error, size), whose result write
    returns; everything else is the stream's own."""

    caught = (OSError,)

    def __init__(self, stream):
        self._stream = stream

    def write(self, text):
        try:
            return self._stream.write(text)
        except self.caught as error:
            return self.failed(error, len(text))

    def flush(self):
        try:
            self._stream.flush()
        except self.caught as error:
            self.failed(error, 0)

    def failed(self, error, size):
        raise error

    def __getattr__(self, name):
        return getattr(self._stream, name)


class QuietOnFailure(GuardedStream):
    """A stream of decoration (a progress bar): once it fails for good (closed, full, its reader gone) it is
    written no more, and nothing is raised."""

    caught = (OSError, ValueError)  # ValueError: a closed file

    def __init__(self, stream):
        super().__init__(stream)
        self._gone = False

    def write(self, text):
        return len(text) if self._gone else super().write(text)

    def flush(self):
        if not self._gone:
            super().flush()

    def failed(self, error, size):
        self._gone = not isinstance(error, TRANSIENT)
        return size
