FROM python:3.11-slim
ENV PYTHONDONTWRITEBYTECODE=1 PYTHONUNBUFFERED=1 DATA_DIR=/data WEB_CONCURRENCY=3
WORKDIR /app
# The lock: every package pinned, transitive ones included (see docs/operations.md).
COPY requirements.txt .
RUN pip install --no-cache-dir -r requirements.txt
COPY . .
RUN useradd --system --home-dir /app --uid 10001 app && mkdir -p /data && chown app /data
USER app
EXPOSE 8000
# gunicorn reads its number of workers from WEB_CONCURRENCY (about two per core) and the
# rest of its settings from gunicorn.conf.py in this directory.
CMD ["gunicorn", "evidence_service.wsgi:application", "--bind", "0.0.0.0:8000", "--access-logfile", "-"]
