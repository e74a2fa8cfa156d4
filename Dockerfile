# One image for every process: the mode comes from IS_API / IS_INSTANT_TASKS_WORKER /
# IS_QUEUED_TASKS_WORKER / IS_ORCHESTRATOR, or `engine sandbox` for the custom code runner.
FROM python:3.11-slim
ENV PYTHONDONTWRITEBYTECODE=1 PYTHONUNBUFFERED=1 PORT=5000
WORKDIR /app
COPY setup.cfg pyproject.toml README.md ./
COPY engine engine
COPY tasks tasks
COPY beat beat
COPY sandbox sandbox
RUN pip install --no-cache-dir . && useradd --system --uid 10001 engine
USER engine
EXPOSE 5000
HEALTHCHECK --interval=15s --timeout=3s CMD python -c "import os,urllib.request; urllib.request.urlopen(f'http://127.0.0.1:{os.environ.get(\"PORT\",\"5000\")}/', timeout=2)"
CMD ["engine", "run"]
