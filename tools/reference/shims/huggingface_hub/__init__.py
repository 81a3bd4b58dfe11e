"""Stand-in: the golden-data scripts load local files only."""


def hf_hub_download(*args, **kwargs):
    raise RuntimeError("no network access: pass local files")
