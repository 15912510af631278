# dockerTools of the rpbuild test stand-in for nixpkgs: streamLayeredImage and
# buildLayeredImage, written for the tests (see flake.nix for what this does not prove).
#
# streamLayeredImage { name, tag ? null, contents ? [ ], config ? { },
#                      created ? "1970-01-01T00:00:01Z", maxLayers ? 100,
#                      extraCommands ? "", fakeRootCommands ? "", architecture ? <from system> }
#   Result: an executable Python script (shebang /usr/bin/python3, the host's python) that
#   writes an uncompressed docker-archive to stdout: `$(nix build ...) | docker load`.
#   Attributes imageName and imageTag. With tag = null the tag is the first 32 hex digits
#   of a SHA-256 over name, the customisation layer's store path, created, architecture and
#   maxLayers: deterministic, and it changes when the image contents or config change.
#   Layers: one per store path of the closure of contents (plus store paths named in
#   config), most referenced first; past maxLayers - 1 store layers the rest share the last
#   store layer; then one customisation layer with contents merged into / as symlinks to
#   their files (directories are real) and the changes made by extraCommands (a script run
#   by busybox sh -e at build time, in the root of that layer, as the build user).
#   Only the config keys listed in supportedConfig are accepted; unknown arguments throw.
#   fakeRootCommands must be empty ("not supported by the stand-in").
# buildLayeredImage: same arguments; $out is the gzipped archive (gzip mtime 0, no name).
{ system, buildSystem, bb, goArch, python }:
let
  writer = ./image_writer.py;

  supportedArgs = [
    "name" "tag" "contents" "config" "created" "maxLayers" "extraCommands"
    "fakeRootCommands" "architecture"
  ];
  supportedConfig = [
    "Cmd" "Entrypoint" "Env" "Labels" "WorkingDir" "Volumes" "ExposedPorts" "User"
    "StopSignal" "Healthcheck"
  ];

  join = builtins.concatStringsSep ", ";
  unknownOf = allowed: attrs:
    builtins.filter (key: !(builtins.elem key allowed)) (builtins.attrNames attrs);

  fail = fn: msg: throw "stand-in dockerTools.${fn}: ${msg}";

  checkedStream = fn: args:
    if !(builtins.isAttrs args) then fail fn "expects an attribute set"
    else if unknownOf supportedArgs args != [ ] then
      fail fn "unsupported argument(s) ${join (unknownOf supportedArgs args)}; the stand-in supports only ${join supportedArgs}"
    else if !(args ? name) then fail fn "argument name is required"
    else stream fn args;

  stream = fn:
    { name
    , tag ? null
    , contents ? [ ]
    , config ? { }
    , created ? "1970-01-01T00:00:01Z"
    , maxLayers ? 100
    , extraCommands ? ""
    , fakeRootCommands ? ""
    , architecture ? goArch
    }:
    let
      cfg = if config == null then { } else config;
      contentsList = if builtins.isList contents then contents else [ contents ];
      baseName = baseNameOf name;

      customisation = builtins.derivation {
        name = "${baseName}-customisation-layer";
        system = buildSystem;
        builder = python;
        args = [ writer "customisation-layer" ];
        inherit bb extraCommands;
        contentsJSON = builtins.toJSON contentsList;
        configJSON = builtins.toJSON cfg;
        passAsFile = [ "extraCommands" "contentsJSON" "configJSON" ];
      };

      imageTag =
        if tag != null then tag
        else builtins.substring 0 32 (builtins.hashString "sha256"
          (builtins.unsafeDiscardStringContext
            "${name}|${customisation.outPath}|${created}|${architecture}|${toString maxLayers}"));

      script = builtins.derivation {
        name = "stream-${baseName}";
        system = buildSystem;
        builder = python;
        args = [ writer "stream-script" ];
        inherit writer created architecture customisation imageTag;
        imageName = name;
        maxLayers = toString maxLayers;
        exportReferencesGraph = [ "closure" customisation ];
      };
    in
    if !(builtins.isString name) || name == "" then fail fn "name must be a non-empty string"
    else if tag != null && !(builtins.isString tag) then fail fn "tag must be a string or null"
    else if !(builtins.isAttrs cfg) then fail fn "config must be an attribute set"
    else if unknownOf supportedConfig cfg != [ ] then
      fail fn "unsupported config key(s) ${join (unknownOf supportedConfig cfg)}; the stand-in supports only ${join supportedConfig}"
    else if !(builtins.isInt maxLayers) || maxLayers < 2 then fail fn "maxLayers must be an integer >= 2"
    else if fakeRootCommands != "" then fail fn "fakeRootCommands is not supported by the stand-in"
    else if !(builtins.isString extraCommands) then fail fn "extraCommands must be a string"
    else script // { imageName = name; inherit imageTag; };

  streamLayeredImage = args: checkedStream "streamLayeredImage" args;

  buildLayeredImage = args:
    let streamed = checkedStream "buildLayeredImage" args; in
    builtins.derivation {
      name = "docker-image-${baseNameOf streamed.imageName}.tar.gz";
      system = buildSystem;
      builder = python;
      args = [ writer "gzip-stream" ];
      stream = streamed;
    } // { inherit (streamed) imageName imageTag; };
in
{
  inherit streamLayeredImage buildLayeredImage;
}
