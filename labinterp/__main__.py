from labinterp.cli import main

main()
