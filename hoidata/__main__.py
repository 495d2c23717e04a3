from hoidata.cli import main

main()
