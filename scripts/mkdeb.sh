#!/bin/sh
# mkdeb.sh DIR VERSION BUILD: makes BUILD/agentgate_VERSION_ARCH.deb from the
# tree `make install DESTDIR=DIR/root PREFIX=/usr` left in DIR/root, with
# the maintainer scripts of packaging/debian, the files under /etc as
# conffiles, and the shared libraries the binaries link as dependencies
# (dpkg-shlibdeps, as a package build would).  Prints the package's path.
set -eu

dir=$1
version=$2
build=$3
root=$dir/root
here=$(cd "$(dirname "$0")/.." && pwd)
arch=$(dpkg --print-architecture)

# Debian policy: compressed man pages, no build paths in the package.
find "$root/usr/share/man" -type f -name '*.[58]' -exec gzip -9n {} +

mkdir -p "$root/DEBIAN" "$dir/debian"
for f in postinst prerm postrm; do
	install -m 0755 "$here/packaging/debian/$f" "$root/DEBIAN/$f"
done
(cd "$root" && find etc -type f | sed 's|^|/|' | sort) >"$root/DEBIAN/conffiles"

printf 'Source: agentgate\n\nPackage: agentgate\nArchitecture: any\n' >"$dir/debian/control"
depends=$(cd "$dir" && dpkg-shlibdeps -O -e root/usr/sbin/agentgated \
	-e root/usr/sbin/agentgatectl 2>/dev/null | sed -n 's/^shlibs:Depends=//p')
[ -n "$depends" ] || { echo "mkdeb: dpkg-shlibdeps found no dependencies" >&2; exit 1; }
size=$(du -sk --exclude=DEBIAN "$root" | cut -f1)

cat >"$root/DEBIAN/control" <<CONTROL
Package: agentgate
Version: $version
Architecture: $arch
Maintainer: agentgate developers <agentgate@localhost>
Installed-Size: $size
Depends: $depends
Section: net
Priority: optional
Description: gateway that AI agents on a Linux host cannot get around
 eBPF programs on the agents' cgroups redirect or refuse every connection;
 agentgated relays them, decides every MCP tool call against policies,
 injects credentials and writes a signed, hash-chained audit log;
 agentgatectl runs agents under governance and inspects the instance.
CONTROL
(cd "$root" && find . -path ./DEBIAN -prune -o -type f -printf '%P\0' |
	xargs -0 md5sum) >"$root/DEBIAN/md5sums"

out=$build/agentgate_${version}_$arch.deb
dpkg-deb --root-owner-group -Zxz --build "$root" "$out" >/dev/null
echo "$out"
