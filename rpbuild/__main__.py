from rpbuild.cli import main

main()
