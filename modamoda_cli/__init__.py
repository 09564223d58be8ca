"""``modamoda``: the command-line client for shops — sign in (password or API key), upload a folder of garment
photos as a batch (parallel, resumable), follow it and download the results with the batch report."""

__version__ = "0.1.0"
