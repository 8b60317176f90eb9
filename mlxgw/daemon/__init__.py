"""Living with the daemon: the lock that makes one daemon per home, starting and stopping it in the
background, and a small client of its OpenAI API for `mlxgw chat`."""

# How long a stopping daemon lets requests in flight (streams included) finish, by default.
DRAIN_S = 30.0
