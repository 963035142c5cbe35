#!/usr/bin/env bash
# Install the whole availability service on one Debian 12 machine (deploy/single-box/README.md):
# Kafka, the stream worker, the CallGuide webhook, one IMAP poller per function mailbox, the
# monthly report mail, Prometheus with the generated alert rules, and Alertmanager.
#
# Usage, as root, from a checkout of the project (the script finds it relative to itself):
#   deploy/single-box/install.sh
#
# Idempotent: a second run changes nothing but the program (pip install of the checkout, which is
# how an upgrade is done) and restarts the availability services. Secrets and site settings are
# created once and never overwritten: /etc/availability/availability.env (fresh secrets from
# `openssl rand -hex 32`), agreements.yaml, managers.yaml, kafka/kafka.env (the cluster id).
# The alert rules and Alertmanager's configuration are generated from the last two on every run.
#
# Staging (tests, packaging): DESTDIR=/some/dir deploy/single-box/install.sh writes every file
# under DESTDIR, as root or not, and skips what changes the machine itself: apt-get, useradd,
# chown, pip, Maven, systemctl and `availability topics create`. It prints what it skipped.
#
# Environment: DESTDIR (staging); PROGRAM, the `availability` that generates the alert rules and
# the Alertmanager configuration from /etc/availability (default the installed venv's; staging
# without one installs the checkout's); PYTHON, the Python with PyYAML that merges the Prometheus
# configuration (default the installed venv's, else python3).
set -euo pipefail

HERE="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
PROJECT="$(cd "$HERE/../.." && pwd)"
DESTDIR="${DESTDIR:-}"
DESTDIR="${DESTDIR%/}"

SERVICE_USER=availability
ETC=/etc/availability
STATE=/var/lib/availability
OPT=/opt/availability
VENV=$OPT/venv
KAFKA_HOME=$OPT/kafka
BIN=/usr/local/bin/availability
PROGRAM="${PROGRAM:-$VENV/bin/availability}"
UNIT_DIR=/etc/systemd/system
PROMETHEUS=/etc/prometheus
PACKAGES=(openjdk-17-jre-headless maven prometheus prometheus-alertmanager python3-venv openssl)
UNITS=(availability-kafka.service availability-stream.service availability-webhook.service availability-imap@.service
  availability-queue-log.service)
REPORT_UNITS=(availability-report.service availability-report.timer)

SKIPPED=()
CHANGED=()

say() { printf 'install.sh: %s\n' "$*"; }
die() {
  say "$*" >&2
  exit 1
}
staging() { [[ -n "$DESTDIR" ]]; }
skip() { SKIPPED+=("$*"); } # listed at the end

# Ownership arguments for install(1): none when staging (files stay the caller's).
owned() { # user:group
  staging && return 0
  printf '%s\n' -o "${1%%:*}" -g "${1##*:}"
}

# put MODE USER:GROUP SOURCE TARGET: install SOURCE as TARGET (a path on the machine, DESTDIR is
# added) when its content, mode or owner differ; an unchanged file keeps its time stamp.
put() {
  local mode="$1" owner="$2" source="$3" target="$DESTDIR$4" args
  mapfile -t args < <(owned "$owner")
  if [[ -f "$target" ]] && cmp -s "$source" "$target" && [[ "$(stat -c %a "$target")" == "${mode#0}" ]] &&
    { staging || [[ "$(stat -c %U:%G "$target")" == "$owner" ]]; }; then
    return 0
  fi
  install -m "$mode" "${args[@]}" "$source" "$target"
  CHANGED+=("$4")
  say "installed $4"
}

# put_once: the same, only when TARGET does not exist yet (site settings and secrets).
put_once() {
  if [[ -e "$DESTDIR$4" ]]; then
    say "kept $4 (it exists; never overwritten)"
    return 0
  fi
  put "$@"
}

directory() { # MODE USER:GROUP PATH
  local args
  mapfile -t args < <(owned "$2")
  install -d -m "$1" "${args[@]}" "$DESTDIR$3"
}

secret() { openssl rand -hex 32; }

# A Kafka cluster id: 16 random bytes, URL-safe base64 without padding (what `kafka-storage.sh
# random-uuid` prints); Kafka refuses one that starts with "-".
cluster_id() {
  local id
  while :; do
    id="$(openssl rand -base64 16 | tr '+/' '-_' | tr -d '=\n')"
    [[ "$id" != -* ]] && break
  done
  printf '%s\n' "$id"
}

# --- checks ------------------------------------------------------------------

[[ $# -eq 0 ]] || die "no arguments (see the comment at the top of $0); DESTDIR=dir stages into dir"
[[ -f "$PROJECT/pyproject.toml" && -f "$PROJECT/deploy/report/availability-report.service" ]] ||
  die "$PROJECT is not a checkout of the availability project (no pyproject.toml, deploy/report/)"
if staging; then
  mkdir -p "$DESTDIR"
  DESTDIR="$(cd "$DESTDIR" && pwd)"
  say "staging into $DESTDIR: nothing outside it is changed"
else
  [[ $EUID -eq 0 ]] || die "run as root (or stage with DESTDIR=dir)"
  [[ -f /etc/debian_version ]] || say "warning: not Debian; the package names are Debian 12's"
fi

# --- packages and the service user -----------------------------------------

if staging; then
  skip "apt-get install ${PACKAGES[*]}"
else
  missing=()
  for package in "${PACKAGES[@]}"; do
    dpkg-query -W -f='${Status}' "$package" 2>/dev/null | grep -q 'install ok installed' || missing+=("$package")
  done
  if ((${#missing[@]})); then
    say "apt-get install ${missing[*]}"
    apt-get update -qq
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "${missing[@]}"
  fi
fi

if staging; then
  skip "useradd $SERVICE_USER, and every chown (the files are owned by whoever runs this)"
elif ! getent passwd "$SERVICE_USER" >/dev/null; then
  say "creating the system user $SERVICE_USER"
  useradd --system --user-group --home-dir "$STATE" --no-create-home --shell /usr/sbin/nologin "$SERVICE_USER"
fi

# --- directories -------------------------------------------------------------

directory 0750 "root:$SERVICE_USER" "$ETC"
directory 0750 "root:$SERVICE_USER" "$ETC/imap"
directory 0750 "root:$SERVICE_USER" "$ETC/kafka"
directory 0700 "$SERVICE_USER:$SERVICE_USER" "$STATE"
directory 0755 root:root "$OPT"
directory 0755 root:root "$KAFKA_HOME"
directory 0755 root:root "$(dirname "$BIN")"
directory 0755 root:root "$UNIT_DIR"

# --- the program -------------------------------------------------------------

if staging; then
  skip "python3 -m venv $VENV && $VENV/bin/pip install $PROJECT"
else
  [[ -x "$VENV/bin/python" ]] || python3 -m venv "$VENV"
  say "pip install $PROJECT into $VENV"
  "$VENV/bin/pip" install --quiet --disable-pip-version-check "$PROJECT"
fi
if [[ "$(readlink "$DESTDIR$BIN" 2>/dev/null || true)" != "$VENV/bin/availability" ]]; then
  ln -sfn "$VENV/bin/availability" "$DESTDIR$BIN"
  CHANGED+=("$BIN")
  say "linked $BIN -> $VENV/bin/availability"
fi

# --- settings and secrets (created once) -------------------------------------

work="$(mktemp -d)"
trap 'rm -rf "$work"' EXIT
chmod 0700 "$work"

sql_password="$(secret)"
sed -e "s/@PSEUDONYM_KEY@/$(secret)/" -e "s/@WEBHOOK_TOKEN@/$(secret)/" -e "s/@SQL_PASSWORD@/$sql_password/g" \
  "$HERE/availability.env.example" >"$work/availability.env"
grep -q '@[A-Z_]*@' "$work/availability.env" && die "a placeholder of availability.env.example was not filled in"
put_once 0640 "root:$SERVICE_USER" "$work/availability.env" "$ETC/availability.env"
printf '# The cluster id the storage is formatted with (install.sh made it once; keep it).\nKAFKA_CLUSTER_ID=%s\n' \
  "$(cluster_id)" >"$work/kafka.env"
put_once 0640 "root:$SERVICE_USER" "$work/kafka.env" "$ETC/kafka/kafka.env"
# The shipped agreements are examples: replace them with the signed ones (README.md).
put_once 0640 "root:$SERVICE_USER" "$PROJECT/schemas/default_agreements.yaml" "$ETC/agreements.yaml"
put_once 0640 "root:$SERVICE_USER" "$PROJECT/deploy/alertmanager/managers.yaml" "$ETC/managers.yaml"

# --- Kafka -------------------------------------------------------------------

put 0640 "root:$SERVICE_USER" "$HERE/kafka/server.properties" "$ETC/kafka/server.properties"
put 0640 "root:$SERVICE_USER" "$HERE/kafka/log4j2.xml" "$ETC/kafka/log4j2.xml"
if staging; then
  skip "mvn dependency:copy-dependencies of $HERE/kafka/pom.xml into $KAFKA_HOME/libs"
elif [[ -f "$KAFKA_HOME/libs/.complete" ]] && cmp -s "$HERE/kafka/pom.xml" "$KAFKA_HOME/pom.xml"; then
  say "kept the Kafka jars in $KAFKA_HOME/libs (the same pom.xml)"
else
  say "resolving the Kafka jars from Maven Central into $KAFKA_HOME/libs"
  rm -rf "$KAFKA_HOME/libs.new"
  if ! mvn -B -q -f "$HERE/kafka/pom.xml" dependency:copy-dependencies -DoutputDirectory="$KAFKA_HOME/libs.new" \
    -DincludeScope=runtime >"$work/mvn.log" 2>&1; then
    tail -n 30 "$work/mvn.log" >&2
    die "Maven could not resolve the Kafka jars"
  fi
  touch "$KAFKA_HOME/libs.new/.complete"
  rm -rf "$KAFKA_HOME/libs"
  mv "$KAFKA_HOME/libs.new" "$KAFKA_HOME/libs"
  chmod -R a+rX "$KAFKA_HOME/libs"
  install -m 0644 "$HERE/kafka/pom.xml" "$KAFKA_HOME/pom.xml"
  CHANGED+=("$KAFKA_HOME/libs")
fi

# --- systemd units -----------------------------------------------------------

for unit in "${UNITS[@]}"; do
  put 0644 root:root "$HERE/$unit" "$UNIT_DIR/$unit"
done
for unit in "${REPORT_UNITS[@]}"; do
  put 0644 root:root "$PROJECT/deploy/report/$unit" "$UNIT_DIR/$unit"
done

# --- Prometheus and Alertmanager ---------------------------------------------

# The alert rules and the Alertmanager configuration are generated from this box's agreements and
# managers (/etc/availability), as `availability generate` makes the committed ones from the
# shipped files: edit those two, then run install.sh again.
generated="$PROJECT/deploy"
if [[ -x "$PROGRAM" ]]; then
  "$PROGRAM" generate --root "$work/generated" --agreements "$DESTDIR$ETC/agreements.yaml" \
    --managers "$DESTDIR$ETC/managers.yaml" >"$work/generate.log" 2>&1 || {
    cat "$work/generate.log" >&2
    die "availability generate refused $ETC/agreements.yaml or $ETC/managers.yaml (nothing changed)"
  }
  generated="$work/generated/deploy"
elif staging; then
  skip "generating the alert rules and Alertmanager configuration from $ETC (no $PROGRAM; set PROGRAM): the checkout's, made from the shipped agreements and managers, were installed"
else
  die "$PROGRAM not found"
fi

if command -v amtool >/dev/null; then
  amtool check-config "$generated/alertmanager/alertmanager.yml" >"$work/amtool.log" 2>&1 || {
    cat "$work/amtool.log" >&2
    die "the generated Alertmanager configuration does not pass amtool check-config (nothing changed)"
  }
fi

directory 0755 root:root "$PROMETHEUS"
directory 0755 root:root "$PROMETHEUS/rules"
put 0644 root:root "$generated/prometheus/rules/availability.rules.yml" "$PROMETHEUS/rules/availability.rules.yml"

python="${PYTHON:-}"
if [[ -z "$python" ]]; then
  python=python3
  [[ -x "$VENV/bin/python" ]] && python="$VENV/bin/python"
fi
config="$DESTDIR$PROMETHEUS/prometheus.yml"
if [[ -f "$config" ]]; then
  [[ -e "$config.before-availability" ]] || cp -p "$config" "$config.before-availability"
  # Written beside the configuration, so the relative rule file resolves when promtool checks it.
  merged="$(mktemp "$DESTDIR$PROMETHEUS/.prometheus.yml.XXXXXX")"
  outcome="$("$python" "$HERE/prometheus_merge.py" "$config" "$HERE/prometheus-scrape.yml" \
    rules/availability.rules.yml "$merged")" || {
    rm -f "$merged"
    die "could not merge the scrape jobs into $PROMETHEUS/prometheus.yml"
  }
  if command -v promtool >/dev/null; then
    promtool check config "$merged" >"$work/promtool.log" 2>&1 || {
      cat "$work/promtool.log" >&2
      rm -f "$merged"
      die "the merged Prometheus configuration does not pass promtool check config (left unchanged)"
    }
  elif ! staging; then
    rm -f "$merged"
    die "promtool not found (Debian's prometheus package has it)"
  fi
  if [[ "$outcome" == changed ]]; then
    chmod 0644 "$merged"
    mv "$merged" "$config"
    CHANGED+=("$PROMETHEUS/prometheus.yml")
    say "merged the availability scrape jobs and rules into $PROMETHEUS/prometheus.yml"
  else
    rm -f "$merged"
  fi
elif staging; then
  skip "merging the scrape jobs: there is no $PROMETHEUS/prometheus.yml under $DESTDIR"
else
  die "$PROMETHEUS/prometheus.yml not found (is Debian's prometheus package installed?)"
fi

# Alertmanager's configuration is the generated one (Debian's sample is kept once beside it).
alertmanager="$PROMETHEUS/alertmanager.yml"
if [[ -f "$DESTDIR$alertmanager" && ! -e "$DESTDIR$alertmanager.before-availability" ]] &&
  ! grep -qF "Generated by \`availability generate\`" "$DESTDIR$alertmanager"; then
  cp -p "$DESTDIR$alertmanager" "$DESTDIR$alertmanager.before-availability"
fi
put 0644 root:root "$generated/alertmanager/alertmanager.yml" "$alertmanager"

# --- start -------------------------------------------------------------------

mailboxes=()
shopt -s nullglob
for file in "$DESTDIR$ETC"/imap/*.env; do
  mailboxes+=("availability-imap@$(basename "$file" .env).service")
done
shopt -u nullglob

changed() { # PATH...: whether one of them was installed by this run
  local path item
  for path in "$@"; do
    for item in "${CHANGED[@]}"; do [[ "$item" == "$path"* ]] && return 0; done
  done
  return 1
}

followers=()
[[ -f "$DESTDIR$ETC/queue-log.env" ]] && followers=(availability-queue-log.service)

services=(availability-stream.service availability-webhook.service "${mailboxes[@]}" "${followers[@]}")
if staging; then
  skip "systemctl daemon-reload; systemctl enable --now availability-kafka.service prometheus prometheus-alertmanager"
  skip "availability topics create (as $SERVICE_USER, against the box's Kafka)"
  skip "systemctl enable + restart ${services[*]}; systemctl enable --now availability-report.timer"
else
  systemctl daemon-reload
  systemctl enable --quiet availability-kafka.service
  if changed "$ETC/kafka" "$KAFKA_HOME" "$UNIT_DIR/availability-kafka.service"; then
    systemctl restart availability-kafka.service
  else
    systemctl start availability-kafka.service
  fi
  # The unit is started once Kafka listens; the broker may take a moment more to take requests.
  for attempt in 1 2 3 4 5 6 7 8 9 10; do
    if runuser -u "$SERVICE_USER" -- /bin/sh -c "set -a && . $ETC/availability.env && set +a && exec $BIN topics create"; then
      break
    fi
    ((attempt < 10)) || die "availability topics create failed 10 times: journalctl -u availability-kafka"
    sleep 3
  done
  systemctl enable --quiet "${services[@]}"
  # A restart picks up an upgrade; SIGTERM makes each one finish and commit what it has.
  systemctl restart "${services[@]}"
  systemctl enable --quiet --now availability-report.timer
  systemctl enable --quiet prometheus.service prometheus-alertmanager.service
  if changed "$PROMETHEUS"; then
    systemctl reload-or-restart prometheus.service
    systemctl restart prometheus-alertmanager.service
  else
    systemctl start prometheus.service prometheus-alertmanager.service
  fi
fi

# --- summary -----------------------------------------------------------------

if ((${#SKIPPED[@]})); then
  say "staged into $DESTDIR; skipped:"
  printf '  - %s\n' "${SKIPPED[@]}"
else
  say "done: systemctl status 'availability-*'; journalctl -u availability-stream -f"
fi
if ((${#mailboxes[@]} == 0)); then
  say "no mailbox yet: add /etc/availability/imap/<mailbox>.env (imap.env.example), then run this again"
fi
