"""The one exception type users see."""


class ChunkatlasError(Exception):
    """A problem with the user's input or data.

    Its message is a single line that names the bad value and what is allowed; the CLI and the
    Snakemake scripts print it without a traceback.
    """
