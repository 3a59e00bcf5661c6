*** Comments ***
Loads the tinytrain firmware (Zephyr, nucleo_f746zg) into Renode's STM32F746 and trains a few
steps over its UART with tinyhost. Run: renode-test boards/renode/train.robot
Variables: ELF (the zephyr.elf to load), TINYHOST (the tinyhost command), PLAN, DATA.

*** Variables ***
${ELF}          ${CURDIR}/../../build-f746/zephyr/zephyr.elf
${TINYHOST}     ${CURDIR}/../../.venv/bin/tinyhost
${PLAN}         ${CURDIR}/../../build/demo.ttp
${DATA}         ${CURDIR}/../../host/tinyhost/demo/basicmotions.npz
${PORT}         3456

*** Settings ***
Library         Process
Suite Setup     Setup
Suite Teardown  Teardown

*** Test Cases ***
Device Answers Info
    Execute Command         $bin=@${ELF}
    Execute Command         $port=${PORT}
    Execute Command         include @${CURDIR}/stm32f746.resc
    Start Emulation
    ${r}=    Run Process    ${TINYHOST}    info    --port    socket://localhost:${PORT}    --json
    Should Be Equal As Integers    ${r.rc}    0    ${r.stderr}
    Should Contain          ${r.stdout}    "board"

Trains A Few Steps
    ${r}=    Run Process    ${TINYHOST}    train    --port    socket://localhost:${PORT}
    ...    --plan    ${PLAN}    --data    ${DATA}    --steps    5    --epochs    1    --json
    Should Be Equal As Integers    ${r.rc}    0    ${r.stderr}
    Should Contain          ${r.stdout}    "steps": 5
