"""Static HTML galleries of hoidata directories (``hoidata show``)."""

from hoidata.show.site import ShowOptions, Site, default_out, write_site

__all__ = ["ShowOptions", "Site", "default_out", "write_site"]
