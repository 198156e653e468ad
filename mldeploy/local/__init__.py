"""Running the packaged model on this machine: Docker container, in-process server, prediction client."""
