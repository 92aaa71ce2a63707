# labinterp: one image for the API (gunicorn), the workers and the one-shot jobs.
#   docker build -t labinterp .
#   docker run --rm labinterp --help
FROM python:3.11-slim

ENV PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    PIP_NO_CACHE_DIR=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1 \
    LABINTERP_INSTANCE=/var/lib/labinterp

WORKDIR /app

# dependencies first, from pyproject.toml alone, so a code change does not reinstall them
COPY pyproject.toml README.md ./
RUN mkdir -p labinterp worker \
    && touch labinterp/__init__.py worker/__init__.py \
    && pip install . \
    && pip uninstall -y labinterp \
    && rm -rf labinterp worker build ./*.egg-info

COPY . .
RUN pip install --no-deps . \
    && rm -rf build ./*.egg-info \
    && useradd --system --uid 10001 --user-group --home-dir /var/lib/labinterp --create-home labinterp

# the code runs from /app, beside migrations/, alembic.ini and reference_ranges/ (the wheel
# installed above carries them too, under share/labinterp)
ENV PYTHONPATH=/app

USER 10001
EXPOSE 8000
ENTRYPOINT ["labinterp"]
# alone (`docker run -p 8000:8000 labinterp`): API + worker on SQLite in the instance folder
CMD ["serve", "--host", "0.0.0.0", "--port", "8000"]
