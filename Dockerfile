# One image for web and worker; compose picks the command.
FROM python:3.11-slim
ENV PYTHONDONTWRITEBYTECODE=1 PYTHONUNBUFFERED=1 PIP_NO_CACHE_DIR=1
RUN apt-get update && apt-get install -y --no-install-recommends libgl1 libglib2.0-0 curl \
    && rm -rf /var/lib/apt/lists/*
WORKDIR /app
COPY pyproject.toml ./
RUN pip install torch==2.14.1 torchvision==0.29.1
COPY . .
RUN pip install . && SECRET_KEY=build DEBUG=0 python manage.py collectstatic --noinput
RUN useradd --create-home workbench && mkdir -p /data/media && chown -R workbench /data /app
USER workbench
EXPOSE 8000
CMD ["gunicorn", "webapp.wsgi:application", "--bind", "0.0.0.0:8000", "--worker-class", "gthread", "--workers", "3", "--threads", "8", "--timeout", "120"]
