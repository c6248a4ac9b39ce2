#!/bin/sh
# Build the clients' test image offline: the static-busybox rootfs of bundles/busybox/make-rootfs
# as a one-layer OCI image (umoci), copied to a docker-archive (skopeo) that `podman load`,
# `ctr images import` and `docker load` all read.
#
#   integration/clients/image.sh WORKDIR ARCHIVE REF     (REF like husk-clients/busybox:latest)
set -eu
here=$(cd "$(dirname "$0")" && pwd)
dir=$1 archive=$2 ref=$3
rm -rf "$dir"
mkdir -p "$dir"
# No probe needed here: make-rootfs only warns when it is missing.
PROBE=/nonexistent "$here/../../bundles/busybox/make-rootfs" "$dir/rootfs" 2>/dev/null
umoci init --layout "$dir/oci"
umoci new --image "$dir/oci:img"
umoci unpack --image "$dir/oci:img" "$dir/bundle"
rm -rf "$dir/bundle/rootfs"
mv "$dir/rootfs" "$dir/bundle/rootfs"
umoci repack --image "$dir/oci:img" "$dir/bundle"
umoci config --image "$dir/oci:img" --config.cmd /bin/sh \
	--config.env PATH=/usr/sbin:/usr/bin:/sbin:/bin
rm -f "$archive"
skopeo copy "oci:$dir/oci:img" "docker-archive:$archive:$ref"
rm -rf "$dir"
