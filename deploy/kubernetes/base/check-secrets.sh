#!/bin/sh
# The init container `check-secrets` of every pod that reads availability-secrets: refuses to
# let the pod start while a secret it needs is empty, short or still the placeholder of
# secrets.env.example. POSIX sh, so it runs in any of the images (Debian, Ubuntu, Alpine).
# Environment: REQUIRED_SECRETS, the names to check; each name as a variable with its value.
# Never prints a value.
status=0
for name in $REQUIRED_SECRETS; do
  value=""
  eval "value=\${$name:-}"
  case "$value" in
    "" | CHANGE-ME*)
      echo "check-secrets: $name in the Secret availability-secrets is not set (empty or the example's placeholder)" >&2
      status=1
      ;;
    *)
      if [ "${#value}" -lt 16 ]; then
        echo "check-secrets: $name in the Secret availability-secrets is shorter than 16 characters" >&2
        status=1
      fi
      ;;
  esac
done
[ "$status" -eq 0 ] && echo "check-secrets: $REQUIRED_SECRETS set"
exit "$status"
