# The container image and its end-to-end test (docker/check.sh does the
# work; see docs/docker.md). Both use a Docker engine when `docker info`
# answers, else podman, which they install and set up when run as root.
#   make docker         build the image smtp-emulator:latest
#   make docker-check   build it, test it alone and with docker/compose.yml
.PHONY: docker docker-check

docker:
	./docker/check.sh build

docker-check:
	./docker/check.sh check
