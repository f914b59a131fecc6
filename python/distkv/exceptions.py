"""The exceptions of the client API.

    DistKVError (RuntimeError)
      ServerError               the server refused a request; str() is its message
        ServerClosedError       (also a ConnectionError) the server went away
      ClientError
        ClientAuthError
          ClientAuthRequiredError   the server wants a login and none was configured
          ClientAuthMethodError     the configured login is not the server's method
      ConnectionError           (also the builtin ConnectionError, an OSError)
                                the connection could not be made or was lost

A failed request raises a fresh exception in the task that made it.
"""

import builtins

__all__ = [
    "DistKVError", "ServerError", "ClientError", "ClientAuthError",
    "ClientAuthRequiredError", "ClientAuthMethodError", "ConnectionError",
    "ServerClosedError", "ServerConnectionError", "error_types",
]


class DistKVError(RuntimeError):
    """The base of every error this package raises."""


class ServerError(DistKVError):
    """The server answered a request with an error; ``str(e)`` is its text."""


class ClientError(DistKVError):
    """Something the client side detected."""


class ClientAuthError(ClientError):
    """Logging in did not work out."""


class ClientAuthRequiredError(ClientAuthError):
    """The server wants a login (the greeting names a method), and the
    configuration has none, or the server refused a request for want of one."""


class ClientAuthMethodError(ClientAuthError):
    """The configured login uses another method than the server wants."""


class ConnectionError(DistKVError, builtins.ConnectionError):  # noqa: A001
    """The server could not be reached, or the connection broke.  Also a
    builtin ConnectionError (OSError), so generic handlers catch it."""


class ServerClosedError(ConnectionError, ServerError):
    """The server closed the connection (or it was reset)."""


ServerConnectionError = ConnectionError  # the original client's name

# error replies name a class in "etype"; these are the ones we turn into
# their own exception, everything else is a ServerError
error_types = {
    "ClientAuthRequiredError": ClientAuthRequiredError,
    "ClientAuthMethodError": ClientAuthMethodError,
}
