#!/bin/bash
# Real ctr (Debian's containerd package, 1.6) against berthd: the Content,
# Images and Leases services and GC.
#   content: ingest (Content.Write), ls, get (Read), label (Update), active
#            (ListStatuses), rm (Delete) and the blob leaving the disk (GC);
#            namespaces do not see each other's content; sharing a blob
#            between namespaces; a namespace with content cannot be removed.
#   images:  import of an OCI archive built here (busybox from busybox-static
#            as the layer) with --no-unpack (lease + Write + Update + Images.Create),
#            ls, label, rm → blobs collected.
#   leases:  create, ls (gc.expire label), rm.
# Exit: 0 pass, 1 fail, 77 skip (with the reason).
. "$(dirname "$0")/lib.sh"
need_root
need_ctr

start_berthd "$T/d" || finish
C=("$CTR" -a "$SOCK")
STORE=$T/d/root/io.berth.content.v1.local/blobs/sha256

blob_on_disk () { [ -e "$STORE/${1#sha256:}" ]; }

# ---- content ----------------------------------------------------------------
printf 'hello berth\n' > "$T/blob"
D=sha256:$(sha256sum "$T/blob" | cut -d' ' -f1)

run "${C[@]}" content ingest --expected-digest "$D" ref1 < "$T/blob"
expect_rc 0 "content ingest"
run "${C[@]}" content ls
expect_contains "$D" "content ls lists the ingested blob"
run "${C[@]}" content get "$D"
expect_contains "hello berth" "content get reads the blob back"
run "${C[@]}" content ingest --expected-digest "$D" ref2 < "$T/blob"
expect_rc 0 "ingesting an existing blob again succeeds (AlreadyExists is not an error for ctr)"
run "${C[@]}" content label "$D" color=blue
run "${C[@]}" content ls
expect_contains "color=blue" "content label sets a label"
run "${C[@]}" -n other content ls
expect_not_contains "$D" "another namespace does not see the blob"

# Sharing: the same bytes ingested in "other" become visible there without a second copy.
run "${C[@]}" -n other content ingest --expected-digest "$D" ref3 < "$T/blob"
expect_rc 0 "ingest of a blob the store already has, in another namespace"
run "${C[@]}" -n other content ls
expect_contains "$D" "the shared blob is visible in the other namespace"
expect_not_contains "color=blue" "labels stay per namespace"

# An interrupted ingest stays active (namespaced) and resumes.
head -c 300000 /dev/urandom > "$T/big"
BD=sha256:$(sha256sum "$T/big" | cut -d' ' -f1)
echo "+ (head -c 100000 big; sleep 5) | ctr content ingest --expected-size 300000 ref-active &  (killed after 1 s)"
( head -c 100000 "$T/big"; sleep 5 ) | "${C[@]}" content ingest --expected-size 300000 ref-active &
ING=$!
sleep 1
kill "$ING" 2>/dev/null; wait "$ING" 2>/dev/null
run "${C[@]}" content active
expect_contains "ref-active" "content active lists the interrupted ingest"
run "${C[@]}" -n other content active
expect_not_contains "ref-active" "ingests are per namespace"
run "${C[@]}" content ingest --expected-size 300000 --expected-digest "$BD" ref-active < "$T/big"
expect_rc 0 "the interrupted ingest resumes and commits"
run "${C[@]}" content get "$BD"
if [ "$rc" = 0 ] && cmp -s <("${C[@]}" content get "$BD") "$T/big"; then pass "resumed blob reads back byte for byte"; else fail "resumed blob differs"; fi
run "${C[@]}" content active
expect_not_contains "ref-active" "a committed ingest is no longer active"

run "${C[@]}" namespaces rm other
if [ "$rc" != 0 ]; then pass "a namespace holding content cannot be removed"; else fail "namespace with content was removed"; fi

# containerd's GC rules: a record nothing points at is collected; gc.root keeps it.
run "${C[@]}" -n other content label "$D" containerd.io/gc.root=yes
run "${C[@]}" content rm "$D"
expect_rc 0 "content rm in default"
sleep 0.5
if blob_on_disk "$D"; then pass "the blob stays while namespace other holds it (gc.root)"; else fail "blob removed while namespace other holds it with containerd.io/gc.root"; fi
if blob_on_disk "$BD"; then fail "unreferenced blob $BD survived GC"; else pass "GC collected the unreferenced resumed blob"; fi
run "${C[@]}" -n other content rm "$D"
sleep 0.5
if blob_on_disk "$D"; then fail "blob $D still on disk after the last reference went"; else pass "GC removed the blob once no namespace references it"; fi
run "${C[@]}" namespaces rm other
expect_rc 0 "an empty namespace can be removed"

# ---- leases -------------------------------------------------------------------
run "${C[@]}" leases create --id l1 purpose=test
expect_rc 0 "leases create"
run "${C[@]}" leases ls
expect_contains "l1" "leases ls shows the lease"
expect_contains "containerd.io/gc.expire=" "ctr's default expiry is stored as a label"
run "${C[@]}" leases create
expect_rc 0 "leases create without an id (server picks one)"
L2=$out
run "${C[@]}" leases rm "$L2"
run "${C[@]}" leases rm l1
expect_rc 0 "leases rm"
run "${C[@]}" leases ls
expect_not_contains "l1 " "the lease is gone"

# A lease keeps content alive until it goes (ctr has no --lease flag, so the
# lease holds content through `ctr images import`, which writes under one;
# here: an expired lease is collected by GC).
run "${C[@]}" leases create --id short --expires 1s
sleep 1.2
run "${C[@]}" leases create --id trigger
run "${C[@]}" leases rm --sync trigger
expect_rc 0 "leases rm --sync (GC runs before the answer)"
run "${C[@]}" leases ls
expect_not_contains "short" "GC removed the expired lease"

# ---- images: import an OCI archive -------------------------------------------
O=$T/oci
mkdir -p "$O/blobs/sha256" "$T/rootfs/bin"
cp /bin/busybox "$T/rootfs/bin/busybox" 2>/dev/null || skip "busybox-static not installed"
tar -C "$T/rootfs" --owner=0 --group=0 --mtime=@0 -cf "$T/layer.tar" bin
DIFF=sha256:$(sha256sum "$T/layer.tar" | cut -d' ' -f1)
gzip -n -c "$T/layer.tar" > "$T/layer.tar.gz"
L=$(sha256sum "$T/layer.tar.gz" | cut -d' ' -f1); LS=$(stat -c %s "$T/layer.tar.gz")
cp "$T/layer.tar.gz" "$O/blobs/sha256/$L"
printf '{"architecture":"amd64","os":"linux","config":{"Cmd":["/bin/busybox","sh"]},"rootfs":{"type":"layers","diff_ids":["%s"]}}' "$DIFF" > "$T/config.json"
CF=$(sha256sum "$T/config.json" | cut -d' ' -f1); CS=$(stat -c %s "$T/config.json")
cp "$T/config.json" "$O/blobs/sha256/$CF"
printf '{"schemaVersion":2,"mediaType":"application/vnd.oci.image.manifest.v1+json","config":{"mediaType":"application/vnd.oci.image.config.v1+json","digest":"sha256:%s","size":%s},"layers":[{"mediaType":"application/vnd.oci.image.layer.v1.tar+gzip","digest":"sha256:%s","size":%s}]}' "$CF" "$CS" "$L" "$LS" > "$T/manifest.json"
M=$(sha256sum "$T/manifest.json" | cut -d' ' -f1); MS=$(stat -c %s "$T/manifest.json")
cp "$T/manifest.json" "$O/blobs/sha256/$M"
printf '{"schemaVersion":2,"manifests":[{"mediaType":"application/vnd.oci.image.manifest.v1+json","digest":"sha256:%s","size":%s,"platform":{"architecture":"amd64","os":"linux"},"annotations":{"org.opencontainers.image.ref.name":"latest"}}]}' "$M" "$MS" > "$O/index.json"
printf '{"imageLayoutVersion":"1.0.0"}' > "$O/oci-layout"
tar -C "$O" -cf "$T/image.tar" oci-layout index.json blobs

run "${C[@]}" images import --no-unpack --base-name docker.io/library/bbox "$T/image.tar"
expect_rc 0 "images import --no-unpack of an OCI archive"
run "${C[@]}" images ls
expect_contains "docker.io/library/bbox:latest" "images ls shows the imported image"
expect_contains "sha256:$M" "the image targets the manifest"
run "${C[@]}" content ls
expect_contains "sha256:$L" "the layer was written through Content.Write"
expect_contains "containerd.io/gc.ref.content" "import labelled the manifest with its children (Content.Update)"
run "${C[@]}" leases ls
expect_not_contains "containerd.io/gc.expire" "import removed its lease"
sleep 0.5
for dg in "$M" "$CF" "$L"; do
  if blob_on_disk "sha256:$dg"; then pass "image blob sha256:${dg:0:12} kept by the image"; else fail "image blob sha256:$dg collected while the image exists"; fi
done
run "${C[@]}" images label docker.io/library/bbox:latest stage=test
run "${C[@]}" images ls
expect_contains "stage=test" "images label"
run "${C[@]}" images check
run "${C[@]}" namespaces rm default
if [ "$rc" != 0 ]; then pass "a namespace holding an image cannot be removed"; else fail "namespace default with an image was removed"; fi

run "${C[@]}" images rm docker.io/library/bbox:latest
expect_rc 0 "images rm"
sleep 0.5
gone=0
for dg in "$M" "$CF" "$L"; do blob_on_disk "sha256:$dg" || gone=$((gone + 1)); done
if [ "$gone" = 3 ]; then pass "images rm: GC removed manifest, config and layer"; else fail "images rm: $((3 - gone)) of 3 blobs still on disk"; fi
run "${C[@]}" content ls
expect_not_contains "sha256:$L" "content records went with the image"

# images rm --sync answers after GC ran.
run "${C[@]}" images import --no-unpack --base-name docker.io/library/bbox "$T/image.tar"
run "${C[@]}" images rm --sync docker.io/library/bbox:latest
if blob_on_disk "sha256:$L"; then fail "images rm --sync: layer still on disk when rm returned"; else pass "images rm --sync: collected before answering"; fi

# ---- the daemon survived it all ------------------------------------------------
run "${C[@]}" version
expect_rc 0 "berthd still answers"
finish
