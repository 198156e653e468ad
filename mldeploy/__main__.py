from mldeploy.cli.main import main

main()
