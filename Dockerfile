# The pinned build environment for xen-test-vm release kernels (Debian 12 "bookworm").
#
#   docker build -t xen-test-vm-build .
#   docker run --rm --user "$(id -u):$(id -g)" -v "$PWD:/src" xen-test-vm-build
#     -> build/test-vm.xen.gz, byte-identical to a native build with the same toolchain
#
# Pins, all named in toolchain.lock (tests/release/test_release_recipes.py checks this file
# against it):
# - the base image by digest. This digest of debian:bookworm-slim was taken from a
#   Renovate-maintained pin in a public Dockerfile (thepwagner-org/debian-bullseye, commit
#   881cdc4b), found by code search because no container registry can be reached from the
#   machine this was written on; confirm it with
#   `docker buildx imagetools inspect debian:bookworm-slim@sha256:<digest>`.
# - every Debian package from snapshot.debian.org at DEBIAN_SNAPSHOT, so apt sees the archive
#   exactly as it was then;
# - the toolchain packages at the exact DEB_* versions, so a wrong snapshot fails loudly
#   instead of installing something else.
FROM debian:bookworm-slim@sha256:12c396bd585df7ec21d5679bb6a83d4878bc4415ce926c9e5ea6426d23c60bdc

COPY toolchain.lock /etc/xen-test-vm/toolchain.lock

# Snapshot Release files are long expired, hence check-valid-until=no; signatures still count.
RUN set -eu; \
    . /etc/xen-test-vm/toolchain.lock; \
    rm -f /etc/apt/sources.list.d/debian.sources; \
    snapshot="http://snapshot.debian.org/archive"; \
    { \
      echo "deb [check-valid-until=no] $snapshot/debian/$DEBIAN_SNAPSHOT $DEBIAN_SUITE main"; \
      echo "deb [check-valid-until=no] $snapshot/debian/$DEBIAN_SNAPSHOT $DEBIAN_SUITE-updates main"; \
      echo "deb [check-valid-until=no] $snapshot/debian-security/$DEBIAN_SNAPSHOT $DEBIAN_SUITE-security main"; \
    } > /etc/apt/sources.list; \
    apt-get -o Acquire::Retries=5 update; \
    DEBIAN_FRONTEND=noninteractive apt-get install -y --no-install-recommends \
      gcc="$DEB_GCC" \
      gcc-12="$DEB_GCC_12" \
      binutils="$DEB_BINUTILS" \
      libxen-dev="$DEB_LIBXEN_DEV" \
      zopfli="$DEB_ZOPFLI" \
      make="$DEB_MAKE" \
      git ca-certificates python3 python3-venv; \
    rm -rf /var/lib/apt/lists/*; \
    git config --system --add safe.directory '*'

# The kernel embeds `git describe` of the mounted checkout; the mount's owner differs from the
# container user, which git refuses without the safe.directory setting above.
WORKDIR /src
CMD ["make", "-s", "-C", "kernel", "O=/src/build", "image"]
