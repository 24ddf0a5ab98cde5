# buildd-agent container image.
#
#   docker build -t buildd-agent .
#   docker run --rm -e BUILDD_API_KEY -e ANTHROPIC_API_KEY \
#     -v buildd-state:/home/buildd/.buildd -v buildd-work:/home/buildd/work buildd-agent
#
# Stage "build" compiles a fully static musl binary natively on Alpine (musl
# gcc is what ring, rustls's crypto provider, needs for its C and assembly
# parts). Stage "binary" holds only that file: the release workflow extracts
# it with `docker build --target binary --output type=local,dest=DIR .`, so the
# released Linux binaries and this image are built the same way. The final
# stage is the runtime image.

ARG RUST_IMAGE=rust:1.95-alpine
ARG RUNTIME_IMAGE=debian:bookworm-slim
# Where the runtime image takes its binary from: the "binary" stage, built
# here, or an image holding a static /buildd-agent built elsewhere
# (scripts/deploy-check packs the one scripts/static-check built and tested,
# on machines that cannot pull the Alpine image).
ARG BINARY_IMAGE=binary

FROM ${RUST_IMAGE} AS build
RUN apk add --no-cache build-base linux-headers
WORKDIR /src
# .git is not in the build context: the commit that `buildd-agent --version`
# prints comes in from outside (scripts/release passes it).
ARG BUILDD_AGENT_COMMIT=unknown
ENV BUILDD_AGENT_COMMIT=${BUILDD_AGENT_COMMIT}
# Compact RELR relocations (~0.35 MB less binary): the musl linked here (1.2.5,
# Alpine's and Rust's bundled one since 1.93) applies them; musl before 1.2.4
# does not, so build.rs leaves them off on musl unless asked. The release runs
# every binary it packages.
ENV BUILDD_AGENT_RELR=1
COPY . .
# Refuse a dynamically linked binary: the release promises a static one.
RUN cargo build --release --locked --bin buildd-agent \
    && install -D -m 0755 target/release/buildd-agent /out/buildd-agent \
    && if readelf -d /out/buildd-agent | grep -q NEEDED; then \
         echo "buildd-agent is dynamically linked" >&2; exit 1; \
       fi

FROM scratch AS binary
COPY --from=build /out/buildd-agent /buildd-agent

FROM ${BINARY_IMAGE} AS agent-binary

FROM ${RUNTIME_IMAGE}
# git: tasks check out and push repositories. ca-certificates: the trust
# roots for HTTPS, read by the agent (rustls's platform verifier) and by git.
# openssh-client: git over SSH remotes.
RUN apt-get update \
    && apt-get install -y --no-install-recommends ca-certificates git openssh-client \
    && rm -rf /var/lib/apt/lists/*
# A fixed non-root uid, so volume ownership is predictable across rebuilds.
RUN useradd --create-home --home-dir /home/buildd --uid 10001 --user-group \
        --shell /usr/sbin/nologin buildd \
    && install -d -o buildd -g buildd -m 0700 /home/buildd/.buildd /home/buildd/work
COPY --from=agent-binary /buildd-agent /usr/local/bin/buildd-agent
USER buildd:buildd
WORKDIR /home/buildd/work
ENV HOME=/home/buildd
# The systemd/podman convention for "inside a container": the agent then refuses to fall
# back to http://localhost:3000 (nothing listens there in a container) and exits 2.
ENV container=docker
# State (config.json, outbox of unsent reports) and checkouts outlive the
# container; both directories exist and belong to buildd before a named
# volume is mounted, so the volume inherits that ownership.
VOLUME ["/home/buildd/.buildd", "/home/buildd/work"]
# The agent forwards SIGTERM to its tasks and waits out --grace-period; give
# it longer than that on `docker stop` (e.g. docker stop -t 30).
STOPSIGNAL SIGTERM
ENTRYPOINT ["buildd-agent"]
