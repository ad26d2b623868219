"""The engines' HTTP/1.1 client: :mod:`.parser` reads responses (no I/O), :mod:`.pool` keeps
connections to one server and sends requests on them."""

from chainette.engine.http1.parser import Response, ResponseParser
from chainette.engine.http1.pool import HTTPPool

__all__ = ["HTTPPool", "Response", "ResponseParser"]
