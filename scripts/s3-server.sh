#!/usr/bin/env bash
# A real S3 server on 127.0.0.1 for the tests: single-node Ceph RADOS Gateway (one monitor, one
# RAM-backed memstore OSD, radosgw with a test user and bucket). Debian packages only.
#
#   scripts/s3-server.sh start   # installs what is missing, starts, prints `export …` lines
#   scripts/s3-server.sh stop
#
# Everything lives under $CINESTREAM_CEPH_DIR (default /tmp/cinestream-ceph); stop removes it.
set -euo pipefail

DIR=${CINESTREAM_CEPH_DIR:-/tmp/cinestream-ceph}
PORT=${CINESTREAM_S3_PORT:-7480}
ACCESS=cinestream-test-key
SECRET=cinestream-test-secret-0123456789
BUCKET=${CINESTREAM_TEST_BUCKET:-cinestream-test}
CONF=$DIR/ceph.conf

log() { echo "s3-server: $*" >&2; }

install() {
  local missing=()
  for b in ceph-mon ceph-osd radosgw radosgw-admin ceph-authtool monmaptool curl; do
    command -v "$b" >/dev/null 2>&1 || missing+=("$b")
  done
  [ ${#missing[@]} -eq 0 ] && return 0
  log "installing Ceph from Debian packages (missing: ${missing[*]})"
  export DEBIAN_FRONTEND=noninteractive
  apt-get update -qq >&2
  apt-get install -y -qq --no-install-recommends radosgw ceph-mon ceph-osd ceph-mgr curl >&2
}

stop() {
  for d in radosgw ceph-osd ceph-mon; do
    pkill -f "$d .*-c $CONF" 2>/dev/null || true
  done
  for _ in $(seq 1 50); do
    pgrep -f -- "-c $CONF" >/dev/null 2>&1 || break
    sleep 0.2
  done
  pkill -9 -f -- "-c $CONF" 2>/dev/null || true
  rm -rf "$DIR"
}

wait_for() { # wait_for SECONDS DESCRIPTION COMMAND…
  local secs=$1 what=$2; shift 2
  for _ in $(seq 1 $((secs * 5))); do
    if "$@" >/dev/null 2>&1; then return 0; fi
    sleep 0.2
  done
  log "timed out waiting for $what; logs in $DIR/log"
  tail -n 30 "$DIR"/log/*.log >&2 || true
  return 1
}

start() {
  install
  stop
  mkdir -p "$DIR"/{run,log,mon,osd,rgw}
  local fsid; fsid=$(cat /proc/sys/kernel/random/uuid)
  cat >"$CONF" <<CONF
[global]
fsid = $fsid
mon host = 127.0.0.1:6789
mon initial members = a
auth cluster required = cephx
auth service required = cephx
auth client required = cephx
run dir = $DIR/run
admin socket = $DIR/run/\$name.asok
log file = $DIR/log/\$name.log
osd objectstore = memstore
memstore device bytes = 4294967296
osd pool default size = 1
osd pool default min size = 1
osd pool default pg num = 8
osd pool default pgp num = 8
osd crush chooseleaf type = 0
mon allow pool size one = true
mon allow pool delete = true
mon max pg per osd = 1000
mon warn on pool no redundancy = false
osd pool default pg autoscale mode = off
mon data = $DIR/mon/\$cluster-\$id
osd data = $DIR/osd/\$cluster-\$id
ms bind ipv6 = false
[client.admin]
keyring = $DIR/admin.keyring
[osd]
keyring = \$osd_data/keyring
[client.rgw.a]
keyring = $DIR/rgw.keyring
rgw frontends = beast endpoint=127.0.0.1:$PORT tcp_nodelay=1
rgw data = $DIR/rgw
CONF
  ceph-authtool --create-keyring "$DIR/mon.keyring" --gen-key -n mon. --cap mon 'allow *' >/dev/null
  ceph-authtool --create-keyring "$DIR/admin.keyring" --gen-key -n client.admin \
    --cap mon 'allow *' --cap osd 'allow *' --cap mgr 'allow *' --cap mds 'allow *' >/dev/null
  ceph-authtool "$DIR/mon.keyring" --import-keyring "$DIR/admin.keyring" >/dev/null
  monmaptool --create --add a 127.0.0.1:6789 --fsid "$fsid" "$DIR/monmap" >/dev/null
  ceph-mon -c "$CONF" --mkfs -i a --monmap "$DIR/monmap" --keyring "$DIR/mon.keyring"
  ceph-mon -c "$CONF" -i a
  wait_for 30 "the monitor" timeout 5 ceph -c "$CONF" mon stat

  local uuid id; uuid=$(cat /proc/sys/kernel/random/uuid)
  id=$(ceph -c "$CONF" osd new "$uuid")
  mkdir -p "$DIR/osd/ceph-$id"
  ceph-osd -c "$CONF" -i "$id" --mkfs --mkkey --osd-uuid "$uuid" --no-mon-config 2>>"$DIR/log/osd-mkfs.log"
  ceph -c "$CONF" auth add "osd.$id" osd 'allow *' mon 'allow profile osd' -i "$DIR/osd/ceph-$id/keyring" >/dev/null 2>&1
  ceph-osd -c "$CONF" -i "$id" 2>>"$DIR/log/osd-start.log"
  wait_for 60 "the OSD" bash -c "ceph -c '$CONF' osd stat | grep -q '1 up'"

  ceph -c "$CONF" auth get-or-create client.rgw.a mon 'allow rw' osd 'allow rwx' -o "$DIR/rgw.keyring" >/dev/null
  radosgw -c "$CONF" -n client.rgw.a
  wait_for 90 "radosgw" curl -sf "http://127.0.0.1:$PORT/"
  radosgw-admin -c "$CONF" user create --uid=cinestream --display-name="cinestream tests" \
    --access-key="$ACCESS" --secret-key="$SECRET" >/dev/null
  # curl signs with SigV4; RGW also wants the payload hash header (that of an empty body).
  local empty=e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855
  wait_for 30 "bucket $BUCKET" curl -sf --aws-sigv4 "aws:amz:us-east-1:s3" --user "$ACCESS:$SECRET" \
    -H "x-amz-content-sha256: $empty" -X PUT "http://127.0.0.1:$PORT/$BUCKET"
  log "Ceph RGW ready on http://127.0.0.1:$PORT, bucket $BUCKET"
  cat <<ENV
export AWS_ENDPOINT_URL=http://127.0.0.1:$PORT
export AWS_ACCESS_KEY_ID=$ACCESS
export AWS_SECRET_ACCESS_KEY=$SECRET
export AWS_REGION=us-east-1
export CINESTREAM_TEST_BUCKET=$BUCKET
ENV
}

case ${1:-start} in
  start) start ;;
  stop) stop ;;
  *) echo "usage: $0 start|stop" >&2; exit 2 ;;
esac
