# Points the official SDK examples, unchanged, at the ovsim under test: their hard-coded
# engine URL, password and CA file are replaced by the test's (environment OVSIM_API_URL,
# OVSIM_PASSWORD, OVSIM_CA); nothing else of theirs changes.
import os

if os.environ.get("OVSIM_API_URL"):
    import ovirtsdk4

    _connect = ovirtsdk4.Connection.__init__

    def _to_ovsim(self, *args, **kwargs):
        kwargs["url"] = os.environ["OVSIM_API_URL"]
        kwargs["username"] = "admin@internal"
        kwargs["password"] = os.environ["OVSIM_PASSWORD"]
        kwargs["ca_file"] = os.environ["OVSIM_CA"]
        kwargs["insecure"] = False
        _connect(self, *args, **kwargs)

    ovirtsdk4.Connection.__init__ = _to_ovsim
