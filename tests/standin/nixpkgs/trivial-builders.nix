# writeTextFile and friends of the rpbuild test stand-in for nixpkgs (same call
# conventions as nixpkgs' trivial builders; written for the tests, not taken from nixpkgs).
{ system, buildSystem, bb, runtimeShell }:
let
  # writeTextFile { name, text, executable ? false, destination ? "" }
  #   destination "": $out is the file itself; otherwise $out/<destination>
  #   (destination must start with "/", e.g. "/bin/foo").
  writeTextFile = { name, text, executable ? false, destination ? "" }:
    if destination != "" && builtins.substring 0 1 destination != "/"
    then throw "stand-in writeTextFile: destination must start with \"/\" (got \"${destination}\")"
    else
      builtins.derivation {
        inherit name text destination;
        executable = if executable then "1" else "";
        system = buildSystem;
        targetSystem = system;
        builder = bb;
        passAsFile = [ "text" ];
        args = [
          "sh"
          "-e"
          "-c"
          ''
            target="$out$destination"
            if [ -n "$destination" ]; then mkdir -p "$(dirname "$target")"; fi
            cp "$textPath" "$target"
            if [ -n "$executable" ]; then chmod 0555 "$target"; else chmod 0444 "$target"; fi
          ''
        ];
      } // { meta = { description = "text file ${name} (stand-in writeTextFile)"; }; };

  writeText = name: text: writeTextFile { inherit name text; };
  writeScript = name: text: writeTextFile { inherit name text; executable = true; };
  writeScriptBin = name: text: writeTextFile {
    inherit name text;
    executable = true;
    destination = "/bin/${name}";
  };
  writeShellScript = name: text: writeTextFile {
    inherit name;
    executable = true;
    text = "#!${runtimeShell}\n${text}";
  };
  writeShellScriptBin = name: text: writeTextFile {
    inherit name;
    executable = true;
    destination = "/bin/${name}";
    text = "#!${runtimeShell}\n${text}";
  };
in
{
  inherit writeTextFile writeText writeScript writeScriptBin writeShellScript writeShellScriptBin;
}
