# One image for every part; docker-compose.yml picks the part with the command.
FROM debian:12-slim
RUN apt-get update \
 && apt-get install -y --no-install-recommends python3 python3-venv ca-certificates ffmpeg iproute2 \
 && rm -rf /var/lib/apt/lists/*
WORKDIR /opt/ketnoi
COPY requirements.lock ./
RUN python3 -m venv .venv && .venv/bin/pip install --no-cache-dir -r requirements.lock
COPY pyproject.toml ./
COPY common ./common
COPY protocol ./protocol
COPY controller ./controller
COPY agents ./agents
COPY media ./media
COPY rtc ./rtc
RUN echo /opt/ketnoi > "$(.venv/bin/python -c 'import sysconfig; print(sysconfig.get_paths()["purelib"])')/ketnoi.pth"
ENV PATH=/opt/ketnoi/.venv/bin:$PATH PYTHONUNBUFFERED=1
RUN useradd --system --home-dir /var/lib/ketnoi --create-home ketnoi \
 && install -d -o ketnoi -m 0700 /var/lib/ketnoi-media
USER ketnoi
