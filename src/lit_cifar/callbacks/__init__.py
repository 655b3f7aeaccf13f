"""Lightning callbacks of this project; each file holds one."""
