{
  description = "xen-test-vm: a tiny Xen PV test guest kernel, and a development shell";

  # flake.lock pins this to one revision; toolchain.lock names the same revision and narHash
  # (tests/release/test_release_recipes.py checks that they agree).
  inputs.nixpkgs.url = "github:NixOS/nixpkgs/nixos-24.11";

  outputs = { self, nixpkgs }:
    let
      system = "x86_64-linux";
      pkgs = nixpkgs.legacyPackages.${system};
      lib = nixpkgs.lib;

      # toolchain.lock is shell KEY=VALUE; reading it here keeps one list of pins for the
      # Debian build, the Dockerfile and this flake.
      lockLines = builtins.filter (line: line != "" && !(lib.hasPrefix "#" line))
        (lib.splitString "\n" (builtins.readFile ./toolchain.lock));
      unquote = value: lib.removePrefix "\"" (lib.removeSuffix "\"" value);
      toolchainLock = builtins.listToAttrs (map
        (line:
          let parts = lib.splitString "=" line;
          in {
            name = builtins.head parts;
            value = unquote (lib.concatStringsSep "=" (builtins.tail parts));
          })
        lockLines);

      # The kernel is freestanding (no libc), so it is built with the unwrapped compiler and
      # binutils: Nix's cc-wrapper would add hardening and libc flags meant for user space.
      gcc = pkgs.${toolchainLock.NIX_GCC_ATTR};
      compiler = gcc.cc;
      binutils = pkgs.binutils-unwrapped;
      xenHeaders = "${lib.getDev pkgs.xen}/include/xen";
      sourceRevision = self.shortRev or self.dirtyShortRev or "unknown";

      makeFlags = [
        "CC=${compiler}/bin/gcc"
        "LD=${binutils}/bin/ld"
        "OBJCOPY=${binutils}/bin/objcopy"
        "ZOPFLI=${pkgs.zopfli}/bin/zopfli"
        "XEN_INCLUDE=${xenHeaders}"
        "SOURCE_REVISION=${sourceRevision}"
      ];

      test-vm = pkgs.stdenvNoCC.mkDerivation {
        pname = "xen-test-vm";
        version = lib.fileContents ./kernel/VERSION;
        src = lib.cleanSource ./.;
        nativeBuildInputs = [ compiler binutils pkgs.gnumake pkgs.zopfli ];
        dontConfigure = true;
        buildPhase = ''
          runHook preBuild
          make -s -C kernel O="$PWD/build" ${lib.escapeShellArgs makeFlags} image
          runHook postBuild
        '';
        installPhase = ''
          runHook preInstall
          install -Dm444 build/test-vm.xen.gz "$out/test-vm.xen.gz"
          runHook postInstall
        '';
      };
    in
    {
      packages.${system} = {
        inherit test-vm;
        default = test-vm;
      };

      devShells.${system}.default = pkgs.mkShell {
        packages = [
          compiler
          binutils
          pkgs.gnumake
          pkgs.zopfli
          pkgs.git
          pkgs.python311
          pkgs.qemu
          pkgs.openssh
        ];
        XEN_INCLUDE = xenHeaders;
        shellHook = ''
          echo "xen-test-vm dev shell: make -C kernel O=build image XEN_INCLUDE=\$XEN_INCLUDE"
          echo "Python tools: python3 -m venv .venv && .venv/bin/pip install -r requirements.lock -r requirements-test.lock -e ./client -e ."
        '';
      };
    };
}
