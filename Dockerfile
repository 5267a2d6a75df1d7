# Builds the cinestream binary and ships it on a slim Debian with what it needs at run time:
# the ONNX Runtime library (from `pip install onnxruntime`, loaded dynamically for ONNX models)
# and the pipeline files and saved queries.
FROM rust:1-bookworm AS build
# CMake builds CharLS (the JPEG-LS codec) from its crate's C++ source.
RUN apt-get update && apt-get install -y --no-install-recommends cmake && rm -rf /var/lib/apt/lists/*
WORKDIR /src
COPY . .
RUN cargo build --release --locked --bin cinestream

FROM debian:bookworm-slim
RUN apt-get update \
 && apt-get install -y --no-install-recommends ca-certificates python3 python3-venv \
 && python3 -m venv /opt/ort \
 && /opt/ort/bin/pip install --no-cache-dir onnxruntime==1.31.1 \
 && ln -s "$(ls /opt/ort/lib/python3*/site-packages/onnxruntime/capi/libonnxruntime.so.1.31.1)" /opt/ort/libonnxruntime.so.1.31.1 \
 && apt-get purge -y python3-venv && apt-get autoremove -y && rm -rf /var/lib/apt/lists/*
ENV ORT_DYLIB_PATH=/opt/ort/libonnxruntime.so.1.31.1
COPY --from=build /src/target/release/cinestream /usr/local/bin/cinestream
COPY pipelines /opt/cinestream/pipelines
WORKDIR /work
ENTRYPOINT ["cinestream"]
