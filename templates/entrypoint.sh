# placeholder: replaced by the real entrypoint
exec "$@"
