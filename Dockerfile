# sam2d service image: Debian 12, the project's own dependency script, a release build.
FROM debian:bookworm-slim
WORKDIR /opt/sam2d
COPY . .
RUN bash scripts/install-deps.sh && apt-get install -y --no-install-recommends curl ca-certificates \
    && cmake -S . -B build -DCMAKE_BUILD_TYPE=Release -DSAM2D_NATIVE=OFF && cmake --build build -j "$(nproc)" \
    && rm -rf /var/lib/apt/lists/*
ENV PORT=8002 MODEL_DIR=/models
EXPOSE 8002
VOLUME ["/models"]
HEALTHCHECK --interval=30s --timeout=5s CMD curl -fs http://127.0.0.1:${PORT}/health || exit 1
CMD ["./scripts/run.sh"]
